"""Live games: game states, win probabilities, their charts and calibration (`kalshi/game_states`, `kalshi/game_probabilities`, `kalshi/calibration`)."""
