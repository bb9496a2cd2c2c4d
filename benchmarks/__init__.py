"""streamtape's benchmarks: ``python benchmarks/run.py`` (or ``python -m benchmarks.run``)."""
