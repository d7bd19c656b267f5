"""Checks one run directory's report.html: it parses as HTML (every non-void element closed in
order) and shows the lost count of the run's results.json. Exit 0 when both hold."""
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "path", "rect", "line", "circle", "polyline", "polygon", "stop", "use"}


class Balance(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"line {self.getpos()[0]}: </{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def main(run_dir: Path) -> int:
    report = run_dir / "report.html"
    results = json.loads((run_dir / "results.json").read_text())
    lost = results["anomalies"]["lost"]["count"]
    parser = Balance()
    parser.feed(report.read_text())
    parser.close()
    problems = parser.errors[:5]
    if parser.stack:
        problems.append(f"unclosed: {parser.stack[-5:]}")
    if "<!doctype html>" not in report.read_text()[:200].lower():
        problems.append("no <!doctype html>")
    text = " ".join(" ".join(parser.text).split())
    if f"{lost} acknowledged sends lost" not in text:
        problems.append(f"the lost count {lost} of results.json is not shown")
    for problem in problems:
        print(f"check-report: {report}: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
