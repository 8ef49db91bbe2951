"""Tests for lti_tool.grades."""
