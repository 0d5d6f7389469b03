"""The summary every ``kedro run`` ends with: what it found, made and dropped, where to look.

It names the project's datasets (``test_metrics``, ``dropped_items``, ...), so it lives
apart from ``tracking``, which knows datasets only through the catalog's declarations.
``run_summary`` builds the text from plain facts; ``hook`` gathers them during the run;
``failure`` says why a run stopped on bad input, without a traceback.
"""
