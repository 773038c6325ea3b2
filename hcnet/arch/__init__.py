"""Architecture description: base specs, composition policies, patterns."""
from .specs import (Row, SERule, BaseSpec, BASE_SPECS, EFFICIENTNET_SCALING,
                    alternating_adjacent, get_base_spec, make_divisible, scale_spec)
from .compose import Pattern, BlockSpec, POLICIES, compose, resolve
