// What a bundler gets for `distillkac/node` under the "browser" condition (package.json "exports"):
// an import that cannot resolve, so the build fails with this message instead of shipping Dawn.
export * from "[distillkac] 'distillkac/node' is Node-only (Dawn, files, training); in a browser bundle import from 'distillkac', the browser entry";
