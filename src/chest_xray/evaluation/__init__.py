"""Evaluation (07_model_output -> 08_reporting): metrics and threshold choice, and the
figures of a trained model. Nothing here imports Kedro or Keras."""
