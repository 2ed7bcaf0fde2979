"""encoder-bulk: a corpus encoded on Ray Data with the in-process Encoder, exactly once.

Needs the `bulk` extra (ray[data], pyarrow); torch-free like the rest of the runtime.
"""
