"""retriever.answers: cited answers composed from a retriever's hits (or an abstention).

    answer(question, retriever, AnswerConfig) -> Answer   compose.py: evidence, quotes, abstention, follow-ups
    Answer, Citation, AnswerConfig, LLMConfig, NOT_FOUND   types.py: what an answer holds and how it is made
    content_tokens, lexical_overlap, split_sentences        sentences.py: how passages are cut and compared
    Answerability, ANSWERABILITY                            answerability.py: P(answerable), fitted apart
    clear_sentence_cache                                    sentence_vectors.py: forget cached sentence vectors (benchmarks)
The evidence score lives in evidence.py and the optional generative reader (an OpenAI-compatible endpoint)
in llm.py.
"""

from retriever.answers.answerability import ANSWERABILITY, Answerability
from retriever.answers.compose import answer
from retriever.answers.sentence_vectors import clear_sentence_cache
from retriever.answers.sentences import content_tokens, lexical_overlap, split_sentences
from retriever.answers.types import NOT_FOUND, Answer, AnswerConfig, Citation, LLMConfig

__all__ = [
    "ANSWERABILITY",
    "Answerability",
    "answer",
    "clear_sentence_cache",
    "content_tokens",
    "lexical_overlap",
    "split_sentences",
    "NOT_FOUND",
    "Answer",
    "AnswerConfig",
    "Citation",
    "LLMConfig",
]
