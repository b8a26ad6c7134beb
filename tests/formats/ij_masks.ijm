// Headless ImageJ check used by test_fiji.py: open a ROI zip, fill each ROI alone on a blank image of the
// given size, save it as a text image <outdir>/<k>.txt and print k, name, selection type, area, score.
args = split(getArgument(), "|");
zip = args[0]; w = parseInt(args[1]); h = parseInt(args[2]); outdir = args[3];
setBatchMode(true);
newImage("img", "8-bit black", w, h, 1);
roiManager("reset");
roiManager("open", zip);
n = roiManager("count");
for (i = 0; i < n; i++) {
  selectImage("img");
  run("Select All"); setColor(0); fill(); run("Select None");
  roiManager("select", i);
  line = "" + i + "\t" + Roi.getName + "\t" + selectionType() + "\t" + getValue("Area") + "\t" + Roi.getProperty("score");
  setColor(255); fill();
  run("Select None");
  saveAs("Text Image", outdir + "/" + i + ".txt");
  rename("img");
  print(line);
}
