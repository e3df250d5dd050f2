"""The service's default limits (one source for the app and ``wavtune serve``'s flags; importing
this needs no FastAPI)."""

DEFAULT_MAX_UPLOAD_MB = 25.0
DEFAULT_MAX_AUDIO_S = 60.0  # longest accepted clip
DEFAULT_MAX_BATCH = 8  # clips per forward pass
DEFAULT_BATCH_WINDOW_MS = 5.0  # how long the first request of a batch waits for company
DEFAULT_MAX_QUEUE = 64  # requests waiting for a batch before new ones get 503
DEFAULT_TIMEOUT_S = 30.0  # per request, queueing included (504 after it)
RETRY_AFTER_S = 1  # the Retry-After of a 503
