"""Running a finished model: evaluation, transcription, windows, timestamps, output."""
