"""What a task leaves besides its row: OCR text layers, the searchable PDF, page previews.

All under DATA_DIR/tasks/<task id>/, written atomically, and removed with the task's files by
retention (the janitor), or when no task of that id is left.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)


class TaskArtifacts:
    def __init__(self, root: Path):
        self.root = Path(root)

    def dir(self, task_id: str) -> Path:
        return self.root / task_id

    def layer(self, task_id: str, index: int) -> Path:
        """The text-only PDF page tesseract wrote for page `index` (0-based, across the task's files)."""
        return self.dir(task_id) / f"layer-{index + 1}.pdf"

    def searchable(self, task_id: str) -> Path:
        return self.dir(task_id) / "searchable.pdf"

    def preview(self, task_id: str, number: int, width: int) -> Path:
        return self.dir(task_id) / f"page-{number}-w{width}.png"

    def write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self, task_id: str) -> bool:
        path = self.dir(task_id)
        if not path.is_dir():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    def task_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir()]
