"""The persona extraction prompt: SocialAlign's official Chinese wording, and its version hash.

SocialAlign asks ``gpt-4-0125-preview`` for a persona of five numbered items (兴趣话题, 语言风格, 情感基调,
性格特征, 价值观; each ≤ 20 characters) from the user name and the 5 retrieved history posts
(docs/methods.md#persona-extraction). The LLM backends (:mod:`.backends`) send exactly these messages; the prompt
lives on its own so that its version (:data:`PROMPT_VERSION`, part of every LLM backend's cache fingerprint) has one
source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from socialalign_lib.data.schema import Post

# The official prompt (docs/methods.md#persona-extraction, exact wording; the system prompt keeps its leading/trailing
# newline)

PERSONA_SYSTEM_PROMPT = (
    "\n你是一个微博平台的用户分析师，负责从用户信息和历史博文中抽取用户特征，生成用户画像。\n"
)

PERSONA_USER_TEMPLATE = """
你的任务是基于以下用户名和该用户的历史博文，生成该用户的详细用户画像。请从以下几个维度进行刻画：

1. 兴趣话题：用户关注的主题、喜欢讨论的话题、常提及的领域。
2. 语言风格：用户常用的表达方式、口头禅、语气（如幽默、正式、随意等）。
3. 情感基调：用户在博文中表现出的情感倾向，通常是积极的、消极的还是中立的。
4. 性格特征：用户在博文中体现的性格特征，如乐观、悲观、独立等。
5. 价值观：用户在博文中体现的价值观，如重视环保、关注社会公平等。

请根据以上格式带数字标号分项列举，精简地对该用户做用户画像，以便更好地预测该用户对某一新闻话题可能发表的博文。每项不超过20字。

请注意，不需要预测用户对特定新闻的具体观点；无需提示词，直接输出用户画像即可；不要使用Markdown格式。

用户信息：
用户名：{username}

历史博文：
{history}
"""

PROMPT_VERSION = hashlib.sha256((PERSONA_SYSTEM_PROMPT + PERSONA_USER_TEMPLATE).encode()).hexdigest()[:8]
"""Part of every LLM backend's fingerprint: editing the prompt invalidates cached personas."""


def build_persona_messages(user_name: str, posts: Sequence[Post], max_posts: int = 5) -> list[dict[str, str]]:
    """The official chat messages for one user: system analyst prompt + the filled user prompt.

    Posts are rendered with :attr:`Post.full_text` (a repost reads "该用户转发了微博: X, 并评论说: Y").
    The official template has exactly five numbered slots; with fewer posts we number what there is.
    """
    history = "\n".join(f"{i}. {p.full_text}" for i, p in enumerate(posts[:max_posts], 1))
    user = PERSONA_USER_TEMPLATE.format(username=user_name, history=history).strip()
    return [{"role": "system", "content": PERSONA_SYSTEM_PROMPT}, {"role": "user", "content": user}]
