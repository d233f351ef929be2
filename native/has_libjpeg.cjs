// Prints 1 when the C compiler finds libjpeg's header (Debian: libjpeg-dev), else 0. binding.gyp
// builds the JPEG fast lane only then; without it every JPEG takes the general (sharp) decoder.
const { spawnSync } = require('node:child_process');
const cc = process.env.CC || 'cc';
const r = spawnSync(cc, ['-E', '-x', 'c', '-'], { input: '#include <stdio.h>\n#include <jpeglib.h>\n', stdio: ['pipe', 'ignore', 'ignore'] });
process.stdout.write(r.status === 0 ? '1' : '0');
