#!/usr/bin/env node
// The `twofold` bin: the bundled command (.build/cli.js), rebuilt first when the sources changed (src/launch.js).
import { launch } from './launch.js';

await launch('cli');
