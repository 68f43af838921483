/**
 * An Express app signing in with Auth.js (@auth/express), for the interop suite
 * (test/interop/authjs.test.ts starts it). Configuration from the environment;
 * listens on 127.0.0.1:PORT and prints "ready <versions>". /me answers the
 * Auth.js session, with acr, amr and the ID token copied in by the callbacks.
 */
import fs from 'node:fs';
import express from 'express';
import { ExpressAuth, getSession } from '@auth/express';

const version = (name) => JSON.parse(fs.readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;
const { PORT, ISSUER, CLIENT_ID, CLIENT_SECRET, AUTH_SECRET } = process.env;

const config = {
  trustHost: true,
  secret: AUTH_SECRET,
  basePath: '/auth',
  providers: [
    {
      id: 'twofold',
      name: 'Twofold',
      type: 'oidc',
      issuer: ISSUER,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      checks: ['pkce', 'state', 'nonce'],
      authorization: { params: { scope: 'openid profile email' } },
    },
  ],
  callbacks: {
    jwt({ token, profile, account }) {
      if (profile) Object.assign(token, { acr: profile.acr, amr: profile.amr, sub: profile.sub, idToken: account?.id_token });
      return token;
    },
    session({ session, token }) {
      return { ...session, acr: token.acr, amr: token.amr, sub: token.sub, idToken: token.idToken };
    },
  },
};

const app = express();
app.set('trust proxy', true);
app.use('/auth', ExpressAuth(config));
app.get('/me', async (req, res) => {
  const session = await getSession(req, config);
  if (!session) res.status(401).json({ error: 'not signed in' });
  else res.json(session);
});
app.listen(Number(PORT), '127.0.0.1', () => {
  console.log(`ready @auth/core@${version('@auth/core')} @auth/express@${version('@auth/express')}`);
});
