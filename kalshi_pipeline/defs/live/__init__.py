"""Live-game automation: `live_games_sensor`, the jobs it launches, the cron automation and run housekeeping."""
