"""The Kedro pipelines, one package each (nodes.py, pipeline.py), found by find_pipelines()."""
