"""What the commands share: the runner (parser, quiet start, exit codes) and the common flags."""
