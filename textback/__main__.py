from __future__ import annotations

from textback.cli import main

raise SystemExit(main())
