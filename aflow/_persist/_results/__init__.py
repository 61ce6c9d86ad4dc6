"""Result storage behind `aflow.results`: serializers, the `Result` base, local and memory stores."""

from __future__ import annotations
