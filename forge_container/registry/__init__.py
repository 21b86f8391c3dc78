"""The service layer: registry operations on a DB session, a storage driver and settings.

Nothing here reads ``flask.request``; functions return plain dataclasses.
"""
