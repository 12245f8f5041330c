"""The ca_bundles lookup: the table's list, documented as it is."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleLookupError

from ansible_collections.ocsp.stapling.plugins.lookup import ca_bundles as plugin
from ansible_collections.ocsp.stapling.plugins.module_utils._platforms import ca_bundles


def test_the_lookup_returns_the_table():
    assert plugin.LookupModule().run([]) == ca_bundles()


@pytest.mark.parametrize("terms, options", [(["debian"], {}), ([], {"family": "debian"})])
def test_the_lookup_takes_no_choice(terms, options):
    with pytest.raises(AnsibleLookupError, match="takes no terms or options"):
        plugin.LookupModule().run(terms, **options)


def test_the_documented_sample_is_the_table():
    assert yaml.safe_load(plugin.RETURN)["_list"]["sample"] == ca_bundles()
