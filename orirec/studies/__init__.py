"""Studies built on the pipeline: every estimator compared on one store, per-protein results of a model, accuracy
against the number of training proteins, and recovery from exact (oracle) distances."""
