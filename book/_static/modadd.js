// modadd's book: click a figure to open it at full size (figures are drawn at 150 dpi and shown
// scaled to the text column). Each numbered figure's image becomes a link to the image file.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("figure img").forEach(function (img) {
    if (img.closest("a")) { return; }
    var link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "figure-enlarge";
    link.title = "Open the figure at full size";
    link.target = "_blank";
    img.parentNode.insertBefore(link, img);
    link.appendChild(img);
  });
});
