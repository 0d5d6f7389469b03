"""Using a trained model: the settings it carries, batch prediction, the MLflow model, the CLI."""
