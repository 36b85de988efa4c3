"""The Xurrent host table: every region × environment, Demo only in Global, and the sandbox switch."""
import pytest

from connections.models import XurrentEnvironment, XurrentRegion
from connections.xurrent import hosts

# From https://developer.xurrent.com/v1 and /v1/oauth (service URL tables).
INSTANCES = {
    ("global", "production"): "xurrent.com",
    ("au", "production"): "au.xurrent.com",
    ("uk", "production"): "uk.xurrent.com",
    ("ch", "production"): "ch.xurrent.com",
    ("us", "production"): "us.xurrent.com",
    ("global", "qa"): "xurrent.qa",
    ("au", "qa"): "au.xurrent.qa",
    ("uk", "qa"): "uk.xurrent.qa",
    ("ch", "qa"): "ch.xurrent.qa",
    ("us", "qa"): "us.xurrent.qa",
    ("global", "demo"): "xurrent-demo.com",
}


@pytest.fixture(autouse=True)
def real_hosts(settings):
    settings.SANDBOX_API_URL = ""


@pytest.mark.parametrize(("region", "environment"), sorted(INSTANCES))
def test_it_knows_every_instance(region, environment):
    domain = INSTANCES[(region, environment)]
    assert hosts.api_base_url(region, environment) == f"https://api.{domain}/v1"
    assert hosts.oauth_token_url(region, environment) == f"https://oauth.{domain}/token"
    assert hosts.account_url("wdc", region, environment) == f"https://wdc.{domain}"


def test_it_covers_every_choice_of_the_tenant_model():
    for region in XurrentRegion.values:
        for environment in XurrentEnvironment.values:
            if (region, environment) in INSTANCES:
                assert hosts.domain(region, environment) == INSTANCES[(region, environment)]
            else:
                assert environment == "demo"
                with pytest.raises(ValueError):
                    hosts.domain(region, environment)


def test_it_accepts_the_model_enums():
    assert hosts.api_base_url(XurrentRegion.AU, XurrentEnvironment.QA) == "https://api.au.xurrent.qa/v1"


@pytest.mark.parametrize("region", ["au", "uk", "ch", "us"])
def test_it_explains_that_demo_exists_only_in_global(region):
    for build in (lambda: hosts.api_base_url(region, "demo"), lambda: hosts.oauth_token_url(region, "demo"),
                  lambda: hosts.account_url("wdc", region, "demo")):
        with pytest.raises(ValueError, match="only Demo instance is in the Global region"):
            build()


def test_it_rejects_unknown_regions_and_environments():
    with pytest.raises(ValueError, match="Unknown Xurrent region 'eu'.*global, au, uk, ch, us"):
        hosts.api_base_url("eu", "production")
    with pytest.raises(ValueError, match="Unknown Xurrent environment 'staging'"):
        hosts.api_base_url("global", "staging")


def test_it_points_every_host_at_the_sandbox_read_at_call_time(settings):
    assert hosts.api_base_url("au", "qa") == "https://api.au.xurrent.qa/v1"
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000/"
    # Each instance keeps a host of its own in the sandbox: its domain as a path segment.
    assert hosts.api_base_url("au", "qa") == "http://127.0.0.1:8000/sandbox/xurrent/au.xurrent.qa/v1"
    assert hosts.oauth_token_url("au", "qa") == "http://127.0.0.1:8000/sandbox/xurrent/au.xurrent.qa/oauth/token"
    assert hosts.account_url("wdc", "au", "qa") == "http://127.0.0.1:8000/sandbox/xurrent/au.xurrent.qa"
    assert hosts.api_base_url("global", "production") == "http://127.0.0.1:8000/sandbox/xurrent/xurrent.com/v1"
    assert hosts.api_base_url("global", "demo") == "http://127.0.0.1:8000/sandbox/xurrent/xurrent-demo.com/v1"
    # An impossible instance stays impossible in the sandbox.
    with pytest.raises(ValueError):
        hosts.api_base_url("us", "demo")
    settings.SANDBOX_API_URL = ""
    assert hosts.account_url("wdc", "us", "production") == "https://wdc.us.xurrent.com"
