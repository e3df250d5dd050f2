"""CTC decoding: greedy, beam search, n-gram LMs and the decoder settings of a run."""
