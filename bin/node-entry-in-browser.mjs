// What a bundler gets for `distillkac/node` under the "browser" condition (package.json "exports"):
// an import that cannot resolve, so the build fails and its message says what to import instead.
import 'distillkac/node is Node-only (Dawn, files, training): in a browser bundle import from "distillkac", the browser entry';
