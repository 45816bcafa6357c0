"""Postfix's mail log: delivery attempts per status and provider.

``lines`` parses one log line, ``tally`` turns parsed lines into counts and
keeps the recipients of deferred messages until they leave the queue, and
``follow`` reads a growing, rotating log file in bounded chunks.
"""
