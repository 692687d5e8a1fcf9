// esbuild bundles imported stylesheets into the app's CSS asset.
declare module '*.css';
