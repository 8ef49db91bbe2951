"""Tests for lti_tool.playlists."""
