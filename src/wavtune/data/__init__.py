"""Data: manifests, audio, text, vocabularies, labels, datasets, the audio cache, batching."""
