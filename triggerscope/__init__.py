"""triggerscope: audit semantic backdoors in language models.

The pipeline, one subpackage or module per stage:
loading/embedded (models) -> chat (inputs and masks) -> hooks (steer and record)
-> organisms -> sae -> methods -> evaluation -> reports.
"""

from triggerscope.errors import TriggerscopeError

__version__ = "0.1.0"
__all__ = ["TriggerscopeError", "__version__"]
