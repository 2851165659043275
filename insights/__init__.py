"""insights: what the knowledge base could not answer, which documents to fix, and proof that a fix worked.

Floor 2 (beside eval): reads the KB's question log and feedback (kb) and re-asks questions (retriever).

Public surface:
    build_insights(kb, since, until, config) -> Insights   counts, gap topics and document health of a period
    insights_dict, insights_text, insights_csv   the report as JSON values, as text, or its topics as CSV
    trend(topic)                             a topic's size against the equally long period before ("+3", "new")
    InsightsConfig, TopicConfig              how gaps are grouped and reported (Hopfield attractors or HDBSCAN)
    GapQuestion, GapTopic, NearPassage       gap questions, their topics and the passages nearest a topic
    gap_questions, weak_answers, gap_topics, embed_questions   the steps of build_insights, for callers with their own data
    topic_labels, hopfield_labels, hdbscan_labels, hopfield_states   the groupings themselves
    DocumentHealth, DocumentUse, PassageUse, StaleAnswer, document_health   most/least/never cited, thumbs down
                                             per document and per passage, replaced versions
    parse_when(value) -> Unix seconds        "7d", "24h", "2w" back from now, or a UTC date "2026-11-01"
    PERIOD_FORMS, PERIOD_MAX_LENGTH          those forms in words, and the longest text taken as one
    replay(topics, retriever) -> Replay      re-ask the gap questions against the current KB, per topic
    replay_dict(replay)                      the replay as JSON values
    JSON_ADDED, JSON_DROPPED                 what the JSON adds to and leaves out of each dataclass (api.schemas)
"""

from insights.gaps import (
    GapQuestion,
    GapTopic,
    InsightsConfig,
    NearPassage,
    embed_questions,
    gap_questions,
    gap_topics,
    weak_answers,
)
from insights.health import DocumentHealth, DocumentUse, PassageUse, StaleAnswer, document_health
from insights.period import FORMS as PERIOD_FORMS
from insights.period import MAX_LENGTH as PERIOD_MAX_LENGTH
from insights.period import parse_when
from insights.replay import Replay, TopicReplay, replay, replay_dict
from insights.report import (
    JSON_ADDED,
    JSON_DROPPED,
    Insights,
    build_insights,
    insights_csv,
    insights_dict,
    insights_text,
    trend,
)
from insights.topics import TopicConfig, hdbscan_labels, hopfield_labels, hopfield_states, topic_labels

__all__ = [
    "GapQuestion",
    "GapTopic",
    "InsightsConfig",
    "NearPassage",
    "embed_questions",
    "gap_questions",
    "gap_topics",
    "weak_answers",
    "DocumentHealth",
    "DocumentUse",
    "PassageUse",
    "StaleAnswer",
    "document_health",
    "parse_when",
    "PERIOD_FORMS",
    "PERIOD_MAX_LENGTH",
    "Replay",
    "TopicReplay",
    "replay",
    "replay_dict",
    "JSON_ADDED",
    "JSON_DROPPED",
    "Insights",
    "build_insights",
    "insights_csv",
    "insights_dict",
    "insights_text",
    "trend",
    "TopicConfig",
    "hdbscan_labels",
    "hopfield_labels",
    "hopfield_states",
    "topic_labels",
]
