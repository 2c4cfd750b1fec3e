"""The servers under load, one module per way of writing them; each runs on the loop its
``--loop`` flag names and prints one readiness line (see ``serve.py``)."""
