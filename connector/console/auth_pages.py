"""The sign-in and sign-out pages: small, self-contained, every value escaped (Jinja2 autoescape)."""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · mailflow connector</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; padding: 1rem; background: #f4f5f7; color: #1d2430; }
  main { max-width: 24rem; margin: 3rem auto; background: #fff; padding: 1.5rem; border-radius: .5rem;
         box-shadow: 0 1px 3px rgba(0,0,0,.15); overflow-wrap: anywhere; }
  h1 { font-size: 1.3rem; margin-top: 0; }
  label { display: block; margin: .8rem 0 .2rem; }
  input[type=text], input[type=password] { box-sizing: border-box; width: 100%; padding: .5rem; font-size: 1rem; }
  button, .button { margin-top: 1rem; padding: .5rem 1rem; font-size: 1rem; cursor: pointer; display: inline-block; }
  .error { background: #fdecea; border-left: 4px solid #b3261e; padding: .5rem .8rem; }
  .note { background: #eef4fb; border-left: 4px solid #2f6fb3; padding: .5rem .8rem; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
{% if error %}<p class="error" role="alert" id="sign-in-error">{{ error }}</p>{% endif %}
{% if note %}<p class="note" id="sign-in-note">{{ note }}</p>{% endif %}
{% if form == "local" %}
<form method="post" action="{{ root }}/login" id="sign-in">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <input type="hidden" name="next" value="{{ next_url }}">
  <label for="name">Name</label>
  <input type="text" id="name" name="name" value="{{ name }}" autocomplete="username" required autofocus>
  <label for="password">Password</label>
  <input type="password" id="password" name="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>
{% elif form == "oidc" %}
<a class="button" id="sign-in-sso" href="{{ root }}/login?next={{ next_url | urlencode }}">
  Sign in with single sign-on</a>
{% elif form == "logout" %}
<p>Signed in as <strong id="signed-in-as">{{ name }}</strong> ({{ role }}).</p>
<form method="post" action="{{ root }}/logout" id="sign-out">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <button type="submit">Sign out</button>
</form>
{% endif %}
</main>
</body>
</html>
"""

_TEMPLATE = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(_PAGE)


def render_page(
    title: str,
    *,
    form: str = "",
    csrf: str = "",
    next_url: str = "/",
    name: str = "",
    role: str = "",
    error: str = "",
    note: str = "",
    root: str = "",
) -> str:
    """One sign-in page; ``form`` is ``local`` (name and password), ``oidc`` (a link), ``logout`` or empty."""
    return _TEMPLATE.render(
        title=title, form=form, csrf=csrf, next_url=next_url, name=name, role=role, error=error, note=note, root=root
    )
