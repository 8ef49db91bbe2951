"""Standards, proficiency scales, evidence and mastery calculations."""
