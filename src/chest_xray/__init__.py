"""chest-xray: a Kedro pipeline that classifies chest X-rays as NORMAL or PNEUMONIA."""

__version__ = "0.1.0"
