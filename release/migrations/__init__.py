"""The Alembic environment of the workspace database (``env.py``, ``versions/``); run by ``release.database``."""
