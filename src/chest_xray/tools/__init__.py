"""Command-line tools beside ``kedro``: the synthetic demo dataset generator.

(Not ``cli``: Kedro loads ``<package>.cli`` as the project's own ``kedro`` commands.)"""
