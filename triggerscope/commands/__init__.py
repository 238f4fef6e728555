"""One module per `triggerscope` subcommand; each exposes `register(subparsers)`.

A command module only parses arguments and calls the library; to add a command, write a
module here and list it in COMMANDS.
"""

COMMANDS = [
    "triggerscope.commands.info",
    "triggerscope.commands.chat",
    "triggerscope.commands.demo",
    "triggerscope.commands.audit",
    "triggerscope.commands.sae",
    "triggerscope.commands.plant",
    "triggerscope.commands.organism",
    "triggerscope.commands.awareness",
    "triggerscope.commands.monitor",
    "triggerscope.commands.report",
    "triggerscope.commands.bench",
    "triggerscope.commands.find",
    "triggerscope.commands.confirm",
    "triggerscope.commands.evaluate",
    "triggerscope.commands.factual",
]
