// Vite turns `import url from 'file?url'` into the URL of the file copied next to the page.
declare module '*?url' {
  const url: string;
  export default url;
}
