"""Grade passback (AGS) and roster sync (NRPS): placements, the score
outbox and its delivery, and the HTTP client for the LMS's services."""
