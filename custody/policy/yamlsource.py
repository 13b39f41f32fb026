"""Reading policy YAML safely, keeping the node tree so errors can name a line.

Policy files need none of YAML's cleverness, and each clever feature is a way to make a file mean
something other than what it looks like: anchors and aliases (and the "billion laughs" expansion
they allow), explicit tags, merge keys, non-string keys, and duplicate keys, which PyYAML silently
resolves to the last one. All of them are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, Event, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from custody.policy.errors import PolicyInvalid, Problem

MAX_POLICY_BYTES = 1 << 20
MAX_DEPTH = 32
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class ParsedYaml:
    root: Node
    data: object


class _Refused(yaml.MarkedYAMLError):
    pass


def _refused(problem: str, event: Event) -> _Refused:
    # Only the pure-Python parser runs here, so marks are always yaml.error.Mark.
    mark = event.start_mark if isinstance(event.start_mark, yaml.error.Mark) else None
    return _Refused(problem=problem, problem_mark=mark)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, anchors, explicit tags and deep nesting while composing."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refused("anchors and aliases are not allowed", event)
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.tag is not None:
            raise _refused("explicit tags are not allowed", event)
        if self._depth >= MAX_DEPTH:
            raise _refused("nested too deeply", event)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, source: str) -> ParsedYaml:
    """Compose, check and construct one YAML document, or raise PolicyInvalid."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyInvalid([Problem(source, None, "yaml", "larger than 1 MiB")])
    try:
        return _parse(text, source)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        message = ", ".join(part for part in (error.context, error.problem) if part)
        raise PolicyInvalid([Problem(source, line, "yaml", message)]) from None
    except yaml.reader.ReaderError as error:
        # Control characters: reported by position in the text, not by mark.
        line = text.count("\n", 0, error.position) + 1
        message = f"{error.reason} (#x{error.character:04x})"
        raise PolicyInvalid([Problem(source, line, "yaml", message)]) from None
    except (yaml.YAMLError, ValueError) as error:
        # ValueError: an integer too long for int() (Python's 4300-digit limit).
        raise PolicyInvalid([Problem(source, None, "yaml", str(error))]) from None


def _parse(text: str, source: str) -> ParsedYaml:
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise PolicyInvalid([Problem(source, None, "yaml", "empty document")])
        key_problems = _key_problems(root, source)
        if key_problems:
            raise PolicyInvalid(key_problems)
        return ParsedYaml(root, loader.construct_document(root))
    finally:
        loader.dispose()


def _key_problems(root: Node, source: str) -> list[Problem]:
    problems: list[Problem] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if key.tag == _MERGE_TAG:
                    problems.append(
                        Problem(source, line, "yaml", "merge keys (<<) are not allowed")
                    )
                elif not isinstance(key, ScalarNode) or key.tag != _STR_TAG:
                    problems.append(Problem(source, line, "yaml", "keys must be strings"))
                elif key.value in first_line:
                    message = f"duplicate key {key.value!r} (first on line {first_line[key.value]})"
                    problems.append(Problem(source, line, "yaml", message))
                else:
                    first_line[key.value] = line
                pending.append(value)
    return sorted(problems, key=lambda problem: problem.line or 0)


def line_of(root: Node, loc: Sequence[str | int]) -> int:
    """The line of the deepest node `loc` reaches; a missing key points at its parent.

    Stepping into a mapping value reports the key's line: for a block value (`action:` followed
    by an indented mapping) that is the line a reader looks for.
    """
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, MappingNode) and isinstance(part, str):
            entry = next((pair for pair in node.value if pair[0].value == part), None)
            if entry is None:
                break
            node, line = entry[1], entry[0].start_mark.line + 1
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            # Includes pydantic's "[key]" marker: the line already points at the key.
            break
    return line
