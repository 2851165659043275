"""Help-centre and wiki exports of the sample knowledge base, shaped as Zendesk and Confluence write them.

- zendesk_export(): the Help Center API's articles list ({"articles": [...], "count", "next_page", ...}),
  one article per sample Markdown, HTML or text document, its body as HTML.
- write_confluence_export(): a space exported as HTML: index.html plus one page file per document
  ("Refund-and-cancellation-policy_65601.html"), each inside Confluence's chrome (breadcrumbs, page
  metadata, attachments, a footer stamped with the export time).

    .venv/bin/python -m data.make_exports --out /tmp/exports     # writes articles.json and confluence/
"""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path

HELP_CENTRE = "https://help.tallyo.example/hc/en-us/articles"
SPACE = "Tallyo Support"
FIRST_ID = 360001


# The inner HTML of a sample page's title (non-greedy) and of its body (all of it).
_ELEMENTS = {"title": re.compile(r"<title>(.*?)</title>", re.S), "body": re.compile(r"<body[^>]*>(.*)</body>", re.S)}


def _element(tag: str, page: str) -> str:
    found = _ELEMENTS[tag].search(page)
    if found is None:
        raise ValueError(f"the sample page has no <{tag}> element")
    return found.group(1)


def sample_pages(docs: Path) -> list[tuple[str, str, str]]:
    """(file stem, title, body HTML) of every Markdown, HTML and text sample document, by file name."""
    from markdown_it import MarkdownIt

    out = []
    for path in sorted(docs.iterdir()):
        if path.suffix not in (".md", ".html", ".txt"):
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".md":
            title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
            body = MarkdownIt("commonmark").enable("table").render(text)
        elif path.suffix == ".html":
            title = html.unescape(_element("title", text).strip())
            body = _element("body", text)
        else:
            title = text.splitlines()[0].strip()
            body = "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())
        out.append((path.stem, title, body))
    return out


def zendesk_export(docs: Path, updated_at: str = "2025-03-01T09:00:00Z") -> dict:
    """The articles export: ids from 360001 in file-name order, html_url from the help centre's address."""
    articles = []
    for i, (stem, title, body) in enumerate(sample_pages(docs)):
        article_id = FIRST_ID + i
        articles.append(
            {
                "id": article_id,
                "url": f"https://tallyo.zendesk.com/api/v2/help_center/en-us/articles/{article_id}.json",
                "html_url": f"{HELP_CENTRE}/{article_id}-{stem}",
                "title": title,
                "body": body,
                "locale": "en-us",
                "draft": False,
                "section_id": 4400001,
                "author_id": 1201,
                "created_at": "2024-11-04T10:00:00Z",
                "updated_at": updated_at,
                "edited_at": updated_at,
            }
        )
    return {
        "articles": articles,
        "count": len(articles),
        "next_page": None,
        "page": 1,
        "page_count": 1,
        "per_page": 100,
        "previous_page": None,
        "sort_by": "position",
        "sort_order": "asc",
    }


def confluence_page(title: str, body: str, modified: str, exported: str) -> str:
    """One page file of a Confluence HTML space export (its chrome as Confluence writes it)."""
    return f"""<!DOCTYPE html>
<html>
    <head>
        <title>{SPACE} : {html.escape(title)}</title>
        <link rel="stylesheet" href="styles/site.css" type="text/css" />
        <meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
    </head>
    <body class="theme-default aui-theme-default">
        <div id="page">
            <div id="main" class="aui-page-panel">
                <div id="main-header">
                    <div id="breadcrumb-section">
                        <ol id="breadcrumbs">
                            <li class="first"><span><a href="index.html">{SPACE}</a></span></li>
                            <li><span><a href="Support-Home_65538.html">Support Home</a></span></li>
                        </ol>
                    </div>
                    <h1 id="title-heading" class="pagetitle">
                        <span id="title-text">{SPACE} : {html.escape(title)}</span>
                    </h1>
                </div>
                <div id="content" class="view">
                    <div class="page-metadata">
                        Created by <span class='author'> Dana Ortiz</span>, last modified by
                        <span class='editor'> Sam Lee</span> on <span class='last-modified'>{modified}</span>
                    </div>
                    <div id="main-content" class="wiki-content group">
{body}
                    </div>
                    <div class="pageSection group">
                        <div class="pageSectionHeader"><h2 id="attachments" class="pageSectionTitle">Attachments:</h2></div>
                        <div class="greybox" align="left"><a href="attachments/65540/65541.png">flow.png</a> (image/png)</div>
                    </div>
                </div>
            </div>
            <div id="footer" role="contentinfo">
                <section class="footer-body">
                    <p>Document generated by Confluence on {exported}</p>
                    <div id="footer-logo"><a href="http://www.atlassian.com/">Atlassian</a></div>
                </section>
            </div>
        </div>
    </body>
</html>
"""


def page_file(stem: str, page_id: int) -> str:
    return f"{stem[:1].upper()}{stem[1:]}_{page_id}.html"


def write_confluence_export(
    docs: Path, out: Path, modified: str = "Mar 01, 2025", exported: str = "Mar 02, 2025 09:00"
) -> dict[str, int]:
    """Write the export into out (index.html and one page per document); file name -> page id."""
    out.mkdir(parents=True, exist_ok=True)
    ids = {}
    links = []
    for i, (stem, title, body) in enumerate(sample_pages(docs)):
        page_id = 65601 + i
        name = page_file(stem, page_id)
        (out / name).write_text(confluence_page(title, body, modified, exported), encoding="utf-8")
        ids[name] = page_id
        links.append(f'<li><a href="{name}">{html.escape(title)}</a></li>')
    (out / "index.html").write_text(
        f'<!DOCTYPE html><html><head><title>{SPACE}</title></head><body><div id="main-header"><h1 id="title-heading"'
        f' class="pagetitle"><span id="title-text">{SPACE}</span></h1></div><div class="pageSection"><h2>'
        f'Available Pages:</h2><ul>{"".join(links)}</ul></div><div id="footer"><p>Document generated by Confluence '
        f"on {exported}</p></div></body></html>",
        encoding="utf-8",
    )
    return ids


def main() -> None:
    from data import SAMPLE_DOCS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "articles.json").write_text(json.dumps(zendesk_export(SAMPLE_DOCS), indent=1), encoding="utf-8")
    pages = write_confluence_export(SAMPLE_DOCS, args.out / "confluence")
    print(f"{args.out}/articles.json and {len(pages)} Confluence pages in {args.out}/confluence")


if __name__ == "__main__":
    main()
