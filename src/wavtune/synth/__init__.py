"""A synthetic spoken corpus made offline with eSpeak NG."""
