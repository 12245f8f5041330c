"""Sphinx configuration of the HTML documentation site (scripts/build-docsite.sh), built from the
pages that antsibull-docs writes from the collection's own documentation."""

import re

from docutils import nodes

project = "ocsp.stapling"
html_title = html_short_title = "ocsp.stapling collection documentation"

# sphinx_antsibull_ext: the roles and directives of antsibull-docs' pages; its Pygments style is "ansible".
extensions = ["sphinx_antsibull_ext"]
pygments_style = "ansible"
highlight_language = "YAML+Jinja"

html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

# Every reference must resolve (sphinx-build -n -W).
nitpicky = True

# References into Ansible's own documentation site: these machines cannot fetch its intersphinx
# inventory, so they are linked by the layout antsibull-docs gives that site. Which of them exist is
# proven before Sphinx runs: `antsibull-docs lint-collection-docs --validate-collection-refs dependent`
# checks every plugin of ansible.builtin and ansible.windows the docs name against the installed
# collections; the labels are those antsibull-docs' own page templates use.
ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/latest/"
ANSIBLE_LABELS = {
    "common_return_values": "reference_appendices/common_return_values.html",
    "ansible_configuration_settings": "reference_appendices/config.html",
    # "This module has a corresponding action plugin" (the modules whose action checks the host's Python first).
    "action_plugins": "plugins/action.html",
}
ANSIBLE_PLUGIN = re.compile(r"ansible_collections\.(ansible)\.(builtin|windows)\.([a-z0-9_]+_[a-z]+)$")


def link_to_ansible_docs(_app, _env, node, contnode):
    """A ``missing-reference`` handler: a link to Ansible's site for the references above, None (still
    missing, so the build fails) for any other."""
    if node.get("refdomain") != "std" or node.get("reftype") != "ref":
        return None
    target = node["reftarget"]
    match = ANSIBLE_PLUGIN.match(target)
    page = "collections/%s/%s/%s.html" % match.groups() if match else ANSIBLE_LABELS.get(target)
    if page is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=ANSIBLE_DOCS + page)
    reference.append(contnode)
    return reference


def setup(app):
    app.connect("missing-reference", link_to_ansible_docs)
