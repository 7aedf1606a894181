"""The demo app's build steps: migrate (SQLite), build CSS, collect static files."""

import shutil
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def migrate() -> None:
    (HERE / "data").mkdir(exist_ok=True)
    with sqlite3.connect(HERE / "data" / "app.sqlite3") as db:
        db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)")
        done = {row[0] for row in db.execute("SELECT name FROM migrations")}
        for path in sorted((HERE / "migrations").glob("*.sql")):
            if path.name in done:
                print(f"  {path.name}: already applied")
                continue
            db.executescript(path.read_text())
            db.execute("INSERT INTO migrations VALUES (?)", (path.name,))
            print(f"  {path.name}: applied")


def build_css() -> None:
    parts = [p.read_text() for p in sorted((HERE / "assets").glob("*.css"))]
    css = " ".join(" ".join(part.split()) for part in parts)
    (HERE / "build").mkdir(exist_ok=True)
    (HERE / "build" / "app.css").write_text(css)
    print(f"  app.css: {len(css)} bytes from {len(parts)} files")


def collectstatic() -> None:
    target = HERE / "static"
    target.mkdir(exist_ok=True)
    for path in (HERE / "build").iterdir():
        shutil.copy2(path, target / path.name)
        print(f"  collected {path.name}")


if __name__ == "__main__":
    {"migrate": migrate, "build_css": build_css, "collectstatic": collectstatic}[sys.argv[1]]()
