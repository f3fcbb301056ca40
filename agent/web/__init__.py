"""The web console (``followup web``): sign-in, the rep's page, the lead's page.

console.py holds the routes, access.py who may see what, oidc.py the sign-in, guard.py the
CSRF tokens, rate limit and security headers, i18n.py the console's languages, server.py the
uvicorn entry. Every action calls the same use case in agent/app.py that the CLI calls.
"""
