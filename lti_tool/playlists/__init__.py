"""Playlists: ordered learning items and each student's personal path through them."""
