"""A small web app signing in with Debian's python3-authlib (requests client), for the interop suite.

Started by test/interop/authlib.test.ts with the issuer, credentials and port in the environment;
binds 127.0.0.1:PORT and prints "ready". Routes: /login (query parameters acr_values and
claims are passed on), /callback, /me, /refresh, /logout, /introspect (as the API, with its own
credentials). Sessions live in memory, keyed by a cookie.
"""
import json
import os
import secrets
import sys
import urllib.parse
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import authlib
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge

ISSUER = os.environ['ISSUER']
CLIENT_ID = os.environ['CLIENT_ID']
CLIENT_SECRET = os.environ['CLIENT_SECRET']
API_ID = os.environ.get('API_CLIENT_ID')
API_SECRET = os.environ.get('API_CLIENT_SECRET')

meta = requests.get(ISSUER + '/.well-known/openid-configuration', timeout=10).json()
jwks = {'keys': []}
sessions = {}


def keys_for(token):
    """The JWKS as fetched; fetched again only for a kid it does not hold (as apps cache it)."""
    global jwks
    header = json.loads(authlib.common.encoding.urlsafe_b64decode(token.split('.')[0].encode() + b'==='))
    if not any(k.get('kid') == header.get('kid') for k in jwks['keys']):
        jwks = requests.get(meta['jwks_uri'], timeout=10).json()
    return JsonWebKey.import_key_set(jwks)


def verify_id_token(id_token, nonce):
    claims = jwt.decode(id_token, keys_for(id_token), claims_options={
        'iss': {'essential': True, 'value': meta['issuer']},
        'aud': {'essential': True, 'value': CLIENT_ID},
        'nonce': {'essential': True, 'value': nonce},
    })
    claims.validate()
    return dict(claims)


class App(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def session(self):
        cookie = SimpleCookie(self.headers.get('Cookie', ''))
        sid = cookie['sid'].value if 'sid' in cookie else None
        if sid not in sessions:
            sid = secrets.token_urlsafe(16)
            sessions[sid] = {}
        return sid, sessions[sid]

    def answer(self, status, body=None, location=None, sid=None):
        self.send_response(status)
        if sid:
            self.send_header('Set-Cookie', 'sid=%s; Path=/; HttpOnly' % sid)
        if location:
            self.send_header('Location', location)
        data = json.dumps(body).encode() if body is not None else b''
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def client(self, token=None):
        return OAuth2Session(CLIENT_ID, CLIENT_SECRET, scope='openid profile email',
                             redirect_uri='http://127.0.0.1:%d/callback' % self.server.server_port,
                             token_endpoint_auth_method='client_secret_basic', token=token)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        sid, s = self.session()
        try:
            if url.path == '/login':
                verifier = secrets.token_urlsafe(48)
                s.update(state=secrets.token_urlsafe(16), nonce=secrets.token_urlsafe(16), verifier=verifier)
                extra = {k: v for k, v in query.items() if k in ('acr_values', 'claims')}
                uri, _ = self.client().create_authorization_url(
                    meta['authorization_endpoint'], state=s['state'], nonce=s['nonce'],
                    code_challenge=create_s256_code_challenge(verifier), code_challenge_method='S256', **extra)
                return self.answer(302, location=uri, sid=sid)
            if url.path == '/callback':
                if query.get('state') != s.get('state'):
                    return self.answer(400, {'error': 'state mismatch'})
                token = self.client().fetch_token(meta['token_endpoint'], code=query['code'], code_verifier=s['verifier'])
                s['token'] = dict(token)
                s['claims'] = verify_id_token(token['id_token'], s['nonce'])
                return self.answer(302, location='/me', sid=sid)
            if url.path == '/me':
                if 'claims' not in s:
                    return self.answer(302, location='/login', sid=sid)
                return self.answer(200, {'claims': s['claims'], 'id_token': s['token']['id_token']}, sid=sid)
            if url.path == '/refresh':
                before = s['token']['access_token']
                token = self.client(s['token']).refresh_token(meta['token_endpoint'], refresh_token=s['token']['refresh_token'])
                s['token'] = dict(token)
                return self.answer(200, {'before': before, 'after': token['access_token']}, sid=sid)
            if url.path == '/logout':
                id_token = s['token']['id_token']
                sessions.pop(sid, None)
                return self.answer(302, location=meta['end_session_endpoint'] + '?' + urllib.parse.urlencode({
                    'id_token_hint': id_token, 'post_logout_redirect_uri': 'http://127.0.0.1:%d/bye' % self.server.server_port}))
            if url.path == '/bye':
                return self.answer(200, {'signed_out': True})
            if url.path == '/introspect':
                api = OAuth2Session(API_ID, API_SECRET, token_endpoint_auth_method='client_secret_basic')
                res = api.introspect_token(meta['introspection_endpoint'], token=query['token'])
                return self.answer(200, res.json())
            if url.path == '/token':
                return self.answer(200, {'access_token': s['token']['access_token']}, sid=sid)
            return self.answer(404, {'error': 'not found'})
        except Exception as err:  # the test reads the reason
            return self.answer(500, {'error': type(err).__name__, 'detail': str(err)})


server = ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), App)
print('ready', flush=True)
server.serve_forever()
