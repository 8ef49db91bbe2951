"""Imports every model so the metadata (and Alembic) sees all tables."""

from lti_tool.courses.models import Course, Enrollment, ResourceLink, User
from lti_tool.db import Base
from lti_tool.grades.models import (
    Evidence,
    GradingPolicy,
    MasteryOverride,
    ReassessmentRequest,
    Rollup,
    ScaleLevel,
    Standard,
    StandardGroup,
)
from lti_tool.launch.models import (
    Deployment,
    KeySetCache,
    LoginState,
    Platform,
    ToolSession,
    UsedNonce,
)
from lti_tool.observability import MetricSeries
from lti_tool.passback.models import (
    CourseServices,
    LineItem,
    Placement,
    ScoreOutbox,
    ServiceToken,
)
from lti_tool.playlists.models import (
    Assignment,
    Goal,
    GoalComment,
    ItemProgress,
    LearnerProfile,
    Playlist,
    PlaylistItem,
    PlaylistTarget,
    QuickCheckAttempt,
    Reflection,
)
from lti_tool.ratelimit import RateLimitCounter

__all__ = [
    "MetricSeries", "RateLimitCounter",
    "CourseServices", "LineItem", "Placement", "ScoreOutbox", "ServiceToken",
    "Assignment", "Goal", "GoalComment", "ItemProgress", "LearnerProfile", "Playlist",
    "PlaylistItem", "PlaylistTarget", "QuickCheckAttempt", "Reflection",
    "Evidence", "GradingPolicy", "MasteryOverride", "ReassessmentRequest", "Rollup",
    "ScaleLevel", "Standard", "StandardGroup",
    "Base", "Course", "Deployment", "Enrollment", "KeySetCache", "LoginState",
    "Platform", "ResourceLink", "ToolSession", "UsedNonce", "User",
]
