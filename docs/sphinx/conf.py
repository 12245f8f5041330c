"""Sphinx configuration of the HTML documentation site (scripts/build-docsite.sh), built from the
pages that antsibull-docs writes from the collection's own documentation."""

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

# Every reference must resolve (sphinx-build -n -W)...
nitpicky = True
# ...except those into Ansible's own documentation site, which these machines cannot reach (no
# intersphinx inventory): the plugins of ansible.builtin and ansible.windows that the docs name are
# checked by `antsibull-docs lint-collection-docs --validate-collection-refs dependent` against the
# installed collections, and the two labels below are written by antsibull-docs' own page templates.
nitpick_ignore_regex = [
    ("std:ref", r"ansible_collections\.ansible\.(builtin|windows)\.[a-z0-9_]+_[a-z]+"),
    ("std:ref", r"common_return_values|ansible_configuration_settings"),
]
