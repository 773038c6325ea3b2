"""Architecture description: base specs, composition policies, patterns."""
from .specs import Row, SERule, BaseSpec, BASE_SPECS, get_base_spec, make_divisible
from .compose import Pattern, BlockSpec, POLICIES, compose, resolve
